"""Building blocks of ``segdice demo``: synthetic data, the tiny U-Net, training, scoring and plots.

Private: the public entry point is :func:`segdice.demo.run_demo`.
"""
