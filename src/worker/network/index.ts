export { desiredOverlay } from "./desired.js";
export { dataPlaneSyncIntervalMs, mapRetryDelayMs, mapRetryDelayMsMax, NetworkAgent, withNetworkAgent } from "./network-agent.js";
export type { NetworkAgentOptions } from "./network-agent.js";
export { OverlayPlane, overlayBridgeMac, overlayBridgeName, overlayMtu, overlayPeersMax, overlayVxlanName, vxlanPort } from "./overlay.js";
export type { OverlayAttachment, OverlayNetwork, OverlayState } from "./overlay.js";
