"""HTTP serving: an ASGI app (``app.create_app``) over a :class:`~promptmix.inference.predictor.Predictor`,
with requests batched dynamically across requests and tasks (``batcher``)."""
