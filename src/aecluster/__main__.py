from aecluster.cli import main

raise SystemExit(main())
