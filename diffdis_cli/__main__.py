from diffdis_cli.main import main

main()
