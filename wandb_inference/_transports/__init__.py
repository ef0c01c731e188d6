"""How bytes reach the wire and come back: the optional aiohttp transport (`transport="aiohttp"`)
and the bounded decoding of compressed bodies that both transports share.

Private: the switch is `AsyncClient(transport="aiohttp")`."""
