import sys, time, cProfile, pstats, shutil, pathlib
import duckdb, pandas
folder = sys.argv[1]
shutil.rmtree(pathlib.Path(folder) / ".waddle" / "history", ignore_errors=True)
import waddle
t0 = time.perf_counter()
api = waddle.Api(overrides={"dir": folder})
run = api.run("bench/r")
t1 = time.perf_counter()
pr = cProfile.Profile(); pr.enable()
df = run.history(keys=["loss"])
pr.disable()
t2 = time.perf_counter()
print(f"find {t1-t0:.3f} history {t2-t1:.3f} rows {len(df)}")
pstats.Stats(pr).sort_stats("cumulative").print_stats(18)
