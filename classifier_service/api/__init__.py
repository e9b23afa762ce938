"""HTTP only: the routers (one per concern), the typed dependencies (:mod:`.deps`), auth, body
limits, error answers (:mod:`.responses`), the crash guard, request and response schemas, and
the OpenAPI documents (the service's and Dify's)."""
