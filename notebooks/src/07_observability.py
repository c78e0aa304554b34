# %% [markdown]
# # 07 · Observability: PromQL from Python, and the pipeline's dashboard
#
# Every process of the lab serves `/metrics` (the API, the producer, each Spark query, SeaweedFS), and
# Prometheus scrapes them all every `PROMETHEUS_SCRAPE_INTERVAL_S`. The container stack shows them in
# Grafana; here the notebook asks Prometheus's HTTP API and draws the same panels with matplotlib.
#
# **Learning goals**
# - ask Prometheus instant and range queries from Python, and read the answer as a table;
# - write the three PromQL shapes a pipeline needs: a rate, a percentile from a histogram, an increase;
# - chart throughput, latency percentiles, gaps, checksum failures and consumer lag: the panels of
#   `deploy/grafana/dashboards/pipeline.json`.

# %% [markdown]
# ![from a counter to a chart](diagrams/07_observability.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import threading

from lab.config import ROOT
from lab.exercises import l07
from lab.producer.replay import Replay, sample_segments
from lab.stack.services import scrape_targets
from lab.widgets import MetricCharts, dashboard_panels, instant, lesson, plot_panels, range_frame, value
from lab.widgets.charts import DASHBOARD, expand

lesson.setup()

# %% [markdown]
# ## Some traffic to look at
#
# So the charts have something to show, a live stream runs in the background for about 20 seconds at 2
# chunks per second (real pre-encoded segments, with one lost and one corrupted on purpose), and a short
# clip is uploaded.

# %%
api = lesson.api()
counters = {"gaps": "live_chunk_gaps_total", "checksum failures": 'chunk_checksum_failures_total{stream_type="live"}'}
before = {name: value(f"sum({series})") for name, series in counters.items()}
replay = Replay(sample_segments(3, resolution="320x180"), api=api, producer=lesson.producer("lesson-07"))
stream = replay.start_stream("lesson 07: traffic for the charts")


def traffic():
    stop = threading.Event()
    replay.run([stream], rate=2.0, duration=6.0, stop=stop)
    stream.inject_gap()
    replay.run([stream], rate=2.0, duration=4.0, stop=stop)
    stream.inject_corruption()
    replay.run([stream], rate=2.0, duration=10.0, stop=stop)
    replay.end(stream)
    return stream.next_sequence


running = lesson.Background(traffic, name="lesson-07-traffic")
with open(ROOT / "data" / "sample-360p-8s.mp4", "rb") as f:
    vod_id = api.post("/vod/upload", data={"title": "lesson 07"},
                      files={"file": ("sample-360p-8s.mp4", f, "video/mp4")}).json()["stream_id"]
print("live:", stream.stream_id, " VOD:", vod_id)

# %% [markdown]
# ## What Prometheus scrapes
#
# `up` is Prometheus's own metric: 1 if the last scrape of a target worked. One *job* per `/metrics`
# endpoint (`lab/stack/services.py` writes the scrape config; the producer's target is down when the
# producer service is not running, as in the test stack).

# %%
print("jobs:", ", ".join(sorted(scrape_targets())))

# %% tags=["nbval-ignore-output"]
instant("up")[["job", "instance", "value"]].sort_values("job")

# %% [markdown]
# ## Three PromQL shapes
#
# **A rate.** Counters only ever go up (`chunks_processed_total`); `rate(x[1m])` turns one into "per second,
# averaged over the last minute". `sum by (label)` adds the series up per label value.

# %%
throughput = "sum by (stream_type) (rate(chunks_processed_total[1m]))"

# %% tags=["nbval-ignore-output"]
instant(throughput)

# %% [markdown]
# **A percentile.** A histogram (`chunk_processing_latency_seconds`) is a set of counters, one per bucket
# (`_bucket{le="0.25"}` counts the observations ≤ 0.25 s). `histogram_quantile` estimates a percentile from
# the rates of the buckets: here, publish → in the live playlist.

# %%
latency = {f"p{q}": f'histogram_quantile(0.{q}, sum by (le) (rate(chunk_processing_latency_seconds_bucket'
                    f'{{stream_type="live"}}[1m])))' for q in (50, 95, 99)}
for name, expr in latency.items():
    print(f"{name}: {expr}")

# %% tags=["nbval-ignore-output"]
{name: round(value(expr), 3) for name, expr in latency.items()}

# %% [markdown]
# **An increase.** A counter's raw value is a total since its process started (it restarts at 0 with the
# process); what you want is how much it went up. There are two ways, and they answer different questions:
# - **two readings** of the counter, before and after: an exact count of what happened in between. Our traffic
#   lost one chunk and corrupted one, so each counter went up by one (more only if another stream had a fault
#   in the same seconds);
# - **`increase(x[5m])`**: how much it rose in the last five minutes, for a dashboard. It counts every
#   stream's faults in that window (an earlier lesson's too), and it is an *estimate*: Prometheus extrapolates
#   the rise it saw between the first and last samples inside the window to the window's edges, so 4 faults
#   can show as 4.01 or 3.9. And it cannot see a series being born: a labelled counter that first appears
#   with the value 1 (`chunk_checksum_failures_total{stream_type="live"}` in a fresh job) has no earlier
#   sample to rise from, so that first fault is missing from `increase()`, while the two readings count it.

# %%
running.join(timeout=120)


def went_up():
    return {name: value(f"sum({series})") - before[name] for name, series in counters.items()}


seen = lesson.wait_for(lambda: min(went_up().values()) >= 1 and went_up(), "the faults in Prometheus", 120)
print("two readings:", ", ".join(f"{name} +{v:g}" for name, v in seen.items()))
windows = {name: f"sum(increase({series}[5m]))" for name, series in counters.items()}
print("\n".join(f"{name} in the last 5 minutes: {expr}" for name, expr in windows.items()))

# %% tags=["nbval-ignore-output"]
{name: round(value(expr), 2) for name, expr in windows.items()}  # every stream's, extrapolated: rarely an integer

# %% [markdown]
# A range query gives a time series per label set: `range_frame` returns it as a pandas DataFrame with a
# time index, ready to plot or compute with.

# %% tags=["nbval-ignore-output"]
range_frame("sum by (stream_type) (rate(chunks_processed_total[15s]))", minutes=2, legend="{{stream_type}}").tail()

# %% [markdown]
# ## The dashboard's panels
#
# The Grafana dashboard the container stack provisions is a JSON file; `dashboard_panels()` reads its
# panels (title, PromQL, unit), so the notebook draws exactly what Grafana shows. `$__rate_interval` (a
# Grafana variable) becomes four scrape intervals here, at least 15 s.

# %%
panels = dashboard_panels()
print(f"{len(panels)} panels in {DASHBOARD.relative_to(ROOT)}:")
print("\n".join(f"  {title}" for title in panels))

# %%
plot_panels(["Live: Chunk Processing Latency", "VOD: Processing Rate & Variants Generated",
             "Live: Chunk Gaps Detected", "Checksum Failures",
             "Consumer Lag (offsets behind latest, per Spark query)", "Spark: Batch Duration p95 by Query"],
            minutes=3)

# %% [markdown]
# Reading them:
# - the live latency's p50 is a few hundred milliseconds while the query keeps up; p95 and p99 jump to seconds
#   whenever something else takes the two cores for a while (a VOD transcode, another lesson's Spark, a query
#   restarting). A spike that lasts one batch is that; a p50 that climbs means the query is falling behind;
# - the gap and checksum-failure panels step up where our faults happened, plus any other stream's (lesson
#   05's, for instance, if it ran in the last minutes);
# - the consumer lag (records on the broker a query has not processed yet, measured by the Spark job after
#   each batch) stays near zero: a lag that grows means the query is falling behind.
#
# The same panels as a widget that redraws itself (switch **live** on):

# %%
MetricCharts(["Live: Chunk Processing Latency", "FastAPI: Response Time"], minutes=5)

# %% [markdown]
# ### Your turn 1 · a rate
#
# Write the PromQL that answers: *how many live chunks per second did the pipeline process, averaged over the
# last minute?* (one number). The checker has Prometheus parse your expression and compares its canonical form
# with the accepted answers (kept as hashes), then shows its value now.

# %%
LIVE_RATE = None  # your turn: a PromQL string
l07.live_rate(LIVE_RATE)

# %% [markdown]
# ### Your turn 2 · an increase
#
# Now: *how many chunk gaps did the live query detect in the last 10 minutes?* (one number, every stream).
# Then compare your answer with the two readings above: why can they differ?

# %%
GAPS_10M = None  # your turn: a PromQL string
l07.gaps_10m(GAPS_10M)

# %% [markdown]
# ## Check yourself
#
# Every query of the dashboard is valid PromQL for this Prometheus, and the pipeline's throughput and
# latency have data.

# %%
for p in panels.values():
    for expr, _ in p.targets:
        instant(expand(expr))  # raises PromError naming the problem if Prometheus refuses it
assert value("sum(increase(chunks_processed_total[5m]))") > 0, "chunks were processed in the last 5 minutes"
assert seen["gaps"] >= 1 and seen["checksum failures"] >= 1
lesson.ok(f"all {sum(len(p.targets) for p in panels.values())} dashboard queries run; throughput, latency and "
          "both fault counters have data")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Why take `rate()` of a counter instead of reading its value?
# 2. Why can `increase(x[5m])` show 4.01 when exactly 4 events happened?
# 3. Why sum bucket rates and then take `histogram_quantile`, instead of averaging each instance's p99?
# 4. p99 spikes while p50 stays flat. What does that tell you?
# 5. Consumer lag grows steadily. What do you look at first?
# 6. A gauge whose measurement failed: why is absent better than stuck at its last value?
# 7. What is `up` for?
#
# ## Recap
#
# In this lesson:
# - Prometheus answers instant and range queries; `rate`, `histogram_quantile` and `increase` are the three shapes;
# - `increase()` extrapolates; two readings of a counter give an exact count;
# - the notebook draws the Grafana dashboard's own queries.
#
# **Next:** [08 · Recovery](08_recovery.ipynb)
