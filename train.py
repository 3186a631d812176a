"""Train one BETE-NET bootstrap member (or a sweep with -m): `python train.py variant=fpd seed=3`.

The same as `python -m betenet.train`; the configuration is conf/ (README.md, Training).
"""

from betenet.train import main

if __name__ == "__main__":
    main()
