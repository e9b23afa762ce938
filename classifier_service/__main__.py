from classifier_service.cli import main

raise SystemExit(main())
