// The connection banner: says plainly whether the server can be reached. Its text (the
// `connection-state` test hook) is one of connected | reconnecting | offline.

const LABELS = { connected: "connected", reconnecting: "reconnecting", offline: "offline" };
const DETAILS = {
  connected: "",
  reconnecting: "The server cannot be reached; reconnecting. Messages you send are kept and sent when it is back.",
  offline: "Offline: not connected to the server.",
};

/** SDK states (connecting | connected | reconnecting | offline) to the three the banner shows. */
export function bannerState(sdkState) {
  if (sdkState === "connected") return "connected";
  if (sdkState === "connecting" || sdkState === "reconnecting") return "reconnecting";
  return "offline";
}

export function setBanner(sdkState, detail) {
  const banner = document.getElementById("banner");
  const state = bannerState(sdkState);
  banner.dataset.state = state;
  banner.querySelector('[data-testid="connection-state"]').textContent = LABELS[state];
  document.getElementById("banner-detail").textContent = detail ?? DETAILS[state];
}
