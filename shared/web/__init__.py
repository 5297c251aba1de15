"""How both services are served over HTTP; nothing outside this package and the services'
``app.py`` and ``hotpath.py`` knows that they are.

gunicorn's own ``asgi`` worker runs each worker's event loop (uvloop) and reads HTTP with its
own parser (gunicorn-h1c's C parser where it is installed). Each service is one ASGI
application, ``shared.web.app.ServiceApp``:

- The routes that carry the traffic (the verifier's verify and forward-auth, the issuer's token
  endpoint) are async handlers (``shared.web.hot``) answered on the event loop. A handler that
  must wait on a network peer (Redis, a JWKS) or do slow CPU work (an RSA signature) hands that
  call to the app's bounded thread pool and awaits it, so the loop never blocks.
- Every other route is a Flask view, reached through a2wsgi's WSGI-to-ASGI adapter, which runs
  it in a bounded thread pool of its own.

Both kinds are declared through one ``shared.web.api.Api`` per app, which makes the OpenAPI
document; both answer errors through one renderer (``shared.web.problems``) and are counted and
logged in one place (``ServiceApp``).
"""
