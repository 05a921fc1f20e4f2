"""``python -m aeq_onnx.cli``: the ``aeq`` command."""

import sys

from aeq_onnx.cli import main

sys.exit(main())
