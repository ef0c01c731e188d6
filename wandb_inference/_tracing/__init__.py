"""Tracing: OpenTelemetry GenAI spans and metrics for every call, and the way to Weave.

`_hooks` is what the clients call: it decides, at the cost of a dictionary lookup, that a
call is not traced (OpenTelemetry not imported, or no provider set). Only when a provider
is set does `_operation` load OpenTelemetry and record the call (`_attributes` builds the
attributes, `_metrics` the instruments). `_weave` sends the spans to W&B Weave.
"""
