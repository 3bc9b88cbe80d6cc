"""``python -m mock_api``: serve the ad platform simulator."""

import sys

from mock_api.server import main

sys.exit(main())
