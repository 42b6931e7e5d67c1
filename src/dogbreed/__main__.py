from dogbreed.cli.app import main

main()
