"""Finite networks of growing width and output scale next to the analytic NTK and NNGP.

Runs the quick setting of ``kernel_vs_network`` (about a minute on two cores), prints
the table and writes the figure; ``lazykit run kernel_vs_network --full`` is the
paper-sized version.
"""

from lazykit import experiments


def main() -> None:
    result = experiments.run("kernel_vs_network", "quick", seed=0, progress=print)
    print(result.summary_text())
    for path in result.save("results/kernel_vs_network"):
        print("wrote", path)


if __name__ == "__main__":
    main()
