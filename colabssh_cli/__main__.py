from colabssh_cli.app import main

raise SystemExit(main())
