"""HTTP transport: aiohttp views, routes and middlewares."""
