from easyflow_cli.cli.main import main

main()
