"""HTTP serving: an ASGI app (``app.create_app``) over a :class:`~promptmix.inference.predictor.Predictor`,
requests batched dynamically across requests and tasks (``batcher``), what one client may hold
(body size, read deadlines: ``limits``), run by uvicorn in the foreground or on a background
thread (``server``)."""
