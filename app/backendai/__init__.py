"""Backend.AI compatibility: the Manager-facing API (a second listener) and the client-facing
``/upload`` and ``/download`` of Backend.AI's storage proxy, implemented on our services."""
