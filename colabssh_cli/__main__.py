from colabssh_cli.entry import main

raise SystemExit(main())
