// Where the Aurora server is. Empty: the origin this page was served from (Aurora serves it at /app/).
// To serve web/ from another origin, set the server's URL here and list this page's origin in the
// server's cors_allowed_origins (see README "The web app").
export const SERVER_URL = "";
