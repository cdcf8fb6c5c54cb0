"""High volume: multi-process scoring of large files on one machine (`multiproc`), and Spark (`spark`).

Nothing is imported here, so `import sentimentkit.scale` needs neither pyarrow workers nor pyspark.
"""
