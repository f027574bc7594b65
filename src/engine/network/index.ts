export { cniVersion, defaultCniPluginDirectory, invokeCniPlugin, parseCniError, parseCniResult } from "./cni.js";
export type { CniInvocation, CniIpConfig, CniResult } from "./cni.js";
export { attachToBridge, bridgeInterfaceHostName, detachFromBridge } from "./interfaces.js";
export type { BridgeInterfaceRequest } from "./interfaces.js";
export { containerHosts, containerResolvConf, writeContainerEtcFiles } from "./etc-files.js";
export { createNetworkManager, netnsDirectory, networkModes, parseNetworkMode, validateNetworkConfig } from "./network.js";
export type { NetworkAttachment, NetworkConfig, NetworkManager, NetworkMode } from "./network.js";
export { isHostPortInUse, parsePortBinding, portKey } from "./ports.js";
export type { PortBinding, PortProtocol } from "./ports.js";
