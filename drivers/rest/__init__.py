"""What every vendor's management API client shares: one pooled async httpx client per
volume, TLS verified by default, timeouts, bounded retries, log-in once and again on 401,
errors mapped to driver errors with the vendor's message kept (``drivers/rest/client.py``),
the options every such backend takes (``drivers/rest/options.py``) and polling of a vendor's
asynchronous jobs to a real terminal state (``drivers/rest/jobs.py``)."""
