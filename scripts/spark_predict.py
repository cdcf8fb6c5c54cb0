"""Entry file for `spark-submit` (which runs a file, not a module): `sentimentkit spark-predict ARGS`.

spark-submit [spark options] scripts/spark_predict.py --model model.pkl --input IN --output OUT
"""

import sys

from sentimentkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["spark-predict", *sys.argv[1:]]))
