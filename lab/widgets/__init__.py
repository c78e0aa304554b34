"""Notebook widgets: what learners see instead of logs. Each widget refreshes on a button and, where it makes
sense, by itself ("live"); errors show as one short red line, never a traceback.

    from lab.widgets import StackHealth, TopicBrowser, CatalogBrowser, BucketBrowser, PlaylistViewer
    from lab.widgets import plot_trace, Hop, plot_panels, MetricCharts, vod_player, live_player
"""

from lab.widgets._base import HTMLDisplay, LabWidget, error
from lab.widgets.buckets import BucketBrowser, object_frame
from lab.widgets.catalog import CatalogBrowser, chunks_frame, stream_document, streams_frame
from lab.widgets.charts import MetricCharts, dashboard_panels, instant, panel, plot_panels, range_frame, value
from lab.widgets.health import StackHealth, health_frame, ui_map, ui_map_frame
from lab.widgets.kafka import TopicBrowser, group_lag_frame, last_messages, messages_frame, topic_frame
from lab.widgets.player import Player, live_player, play, player_url, vod_player
from lab.widgets.playlist import PlaylistViewer, read_playlist, window_of
from lab.widgets.trace import Hop, plot_trace, trace_frame

__all__ = [
    "BucketBrowser", "CatalogBrowser", "HTMLDisplay", "Hop", "LabWidget", "MetricCharts", "Player", "PlaylistViewer",
    "StackHealth", "TopicBrowser", "chunks_frame", "dashboard_panels", "error", "group_lag_frame", "health_frame",
    "instant", "last_messages", "live_player", "messages_frame", "object_frame", "panel", "play", "player_url",
    "plot_panels", "plot_trace", "range_frame", "read_playlist", "stream_document", "streams_frame", "topic_frame",
    "trace_frame", "ui_map", "ui_map_frame", "value", "vod_player", "window_of",
]
