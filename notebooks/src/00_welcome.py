# %% [markdown]
# # 00 · Welcome: the stack you are about to take apart
#
# This lab is a small but production-shaped video streaming backend: a **VOD** pipeline (upload a file, get an
# adaptive-bitrate HLS stream) and a **live** pipeline (an encoder's segments become a rolling playlist within
# a second or two). Everything is real: Kafka, Spark Structured Streaming, S3 object storage, a MongoDB-wire
# catalog, a FastAPI control plane, Prometheus, and ffmpeg making real H.264/AAC segments.
#
# **Learning goals**
# - see every service of the lab and whether it is healthy, as a live table;
# - know where each piece runs (a process, a port, a log file) and which web UI belongs to it;
# - know how the lessons work: each one states its goals, runs top to bottom in about two minutes, shows
#   widgets, tables, plots and players instead of logs, and ends with a check you can run.
#
# Run the cells from the top (Shift+Enter). Nothing here changes the stack.

# %% [markdown]
# ![the lab's architecture, with one chunk's path](diagrams/00_architecture.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
from lab.config import settings
from lab.stack import doctor
from lab.widgets import StackHealth, health_frame, lesson, ui_map

lesson.setup()

# %% [markdown]
# ## Preflight: is this machine ready?
#
# `lab doctor` (which `make lab` runs before it builds anything) checks what the lab needs: Python, Java 17+,
# Go, Node/npm, free memory and disk, cores, every port the lab opens (free, or held by this lab), and the
# tools set-up builds. Each line is `[OK]`, or `[FAIL]` with the exact fix. The same check, from here:

# %% tags=["nbval-ignore-output"]
preflight, ready = doctor.report(doctor.run_checks())
print(preflight)

# %% [markdown]
# ## The stack, live
#
# One row per service. The table refreshes every 5 s while **live** is on (it is, for half an hour); the
# **refresh** button does it at once. `lab status` in a terminal prints the same thing.

# %%
health = StackHealth()
health

# %% [markdown]
# The widget reads `lab.stack.status()`: the process id the supervisor recorded for each service, its port,
# a real health probe (Kafka lists its brokers, S3 lists buckets, the catalog answers `ping`, the API answers
# `GET /health`, each Spark job serves its `/metrics`), and the memory of the process group. As a pandas
# table, to work with in code:

# %% tags=["nbval-ignore-output"]
frame = health_frame()
frame[["service", "state", "port", "purpose"]]

# %% [markdown]
# ## Where each piece runs
#
# In the embedded mode every service is a local process started by the `lab` command; their data, logs and
# process ids live in one *state directory*. The same `lab` package runs in the container stack
# (`docker compose up`), where each service is a container instead.

# %%
print(f"mode:            {settings.lab_mode}")
print(f"state directory: {settings.lab_state_dir}")
print(f"logs:            {settings.lab_state_dir / 'logs'} (one file per service; this notebook's: notebooks.log)")
print(f"Kafka bootstrap: {settings.kafka_servers}")
print(f"S3 endpoint:     {settings.s3_url}")
print(f"catalog:         {settings.mongo_url}{settings.mongo_db}")
print(f"API:             {settings.api_base}")
print(f"Prometheus:      {settings.prometheus_base}")

# %% [markdown]
# Every host, port, topic, bucket and credential comes from one typed settings object, `lab.config.settings`,
# read from `.env` (and from the file named by `LAB_ENV_FILE`, which is how the test stack runs on other
# ports). No lesson writes a port by hand: run `lab ui` in a terminal for the same map.
#
# ## The UI map
#
# The web pages of the stack, with their credentials. (The embedded Prometheus serves its HTTP API without
# the web UI; lesson 07 draws the charts in the notebook. Grafana, Redpanda Console and Mongo Express run
# in the container stack.)

# %%
ui_map()

# %% [markdown]
# ## Follow one chunk
#
# The lessons follow a chunk of video through the system in the order the code runs:
#
# | step | what happens | module | lesson |
# |---|---|---|---|
# | producer | an upload is cut into segments; a live encoder makes 2 s segments | `lab/producer/`, `lab/ingest.py` | 02, 04, 05 |
# | Kafka | one small JSON event per segment (never the bytes), keyed by `stream_id` | `lab/events.py`, `lab/topics.py` | 01 |
# | Spark | two streaming queries: VOD transcodes the ABR ladder, live builds the rolling playlist | `lab/streaming/` | 03 |
# | S3 | segments and playlists in four private buckets, keys derived from `stream_id` | `lab/storage.py` | 04, 09 |
# | catalog | one document per stream and per chunk, idempotent upserts | `lab/catalog.py` | 04, 05 |
# | playlist | HLS master, media and live playlists | `lab/hls.py` | 04, 05 |
# | player | a signed playlist URL; segments fetched straight from S3 | `lab/playback.py` | 04, 05, 09 |
#
# Then lesson 06 traces one chunk through all of it with a time per hop, 07 reads the metrics, 08 breaks
# things on purpose and shows nothing is lost, and 09 looks at the read path a CDN would serve.
#
# ## Check yourself
#
# Every lesson ends with a cell like this one: it asserts what the lesson showed and prints a green line.

# %%
wanted = frame[frame["wanted"]]
down = list(wanted.loc[~wanted["healthy"], "service"])
assert not down, f"not healthy: {', '.join(down)}; try `lab status` and `lab logs SERVICE` in a terminal"
with lesson.api() as api:
    answer = api.get("/health").json()
assert answer["status"] == "ok", f"the API reports {answer}"
lesson.ok(f"all {len(wanted)} services this stack runs are healthy, and the API's own checks pass: "
          + ", ".join(answer["checks"]))

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. No chunk reaches a live playlist. Which two services do you look at first in the health table, and why those?
# 2. Why does every host and port come from one settings object and never from a literal in the code?
# 3. What does a health probe prove that a running process id does not?
# 4. Why can the same lessons run on the embedded stack and on the container stack?
# 5. A lesson shows widgets and tables rather than log lines. What would go wrong with logs in a notebook?
#
# ## Recap
#
# In this lesson:
# - every service of the lab has a process, a port, a log and a health probe; `lab status` and the table above show them;
# - all addresses come from `lab.config.settings` (`.env`, or `LAB_ENV_FILE`);
# - a chunk goes producer → Kafka → Spark → S3 + catalog → playlist → player, and the lessons follow it in that order.
#
# **Next:** [01 · Kafka](01_kafka.ipynb)
