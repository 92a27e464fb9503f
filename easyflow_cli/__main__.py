from easyflow_cli.cli.entry import main

main()
