"""Example step: recompute a few KPI tiles (CPU work, no network)."""

import math
import time

start = time.perf_counter()
primes = sum(1 for n in range(2, 60000) if all(n % d for d in range(2, math.isqrt(n) + 1)))
print(f"active users: {primes % 997}")
print(f"conversion:   {primes / 60000:.2%}")
print(f"refreshed in {time.perf_counter() - start:.3f}s")
