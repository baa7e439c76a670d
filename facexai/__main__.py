from facexai.cli import main

main()
