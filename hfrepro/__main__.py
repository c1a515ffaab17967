from hfrepro.cli import main

main()
