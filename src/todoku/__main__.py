from todoku.cli.main import main

main()
