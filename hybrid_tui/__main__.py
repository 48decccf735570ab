import sys

from hybrid_tui.app.main import main

sys.exit(main())
