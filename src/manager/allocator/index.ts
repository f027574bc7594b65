export { AddressPool, networkPrefixLengthMax, networkPrefixLengthMin } from "./address-pool.js";
export { allocationsPerTransactionMax, Allocator, dynamicPortMax, dynamicPortMin } from "./allocator.js";
export type { AllocatorOptions, PoolUsage } from "./allocator.js";
export {
  checkServiceNetworking,
  clusterAddressPool,
  createNetworkInTx,
  defaultAddressPool,
  ingressNetworkName,
  isAddressReleased,
  networkAttachmentsReady,
  networksMax,
  networkSubnetPrefixLength,
  pickNetworkSubnet,
  removeNetworkInTx,
  resolveNetwork,
  usesIngress,
} from "./networks.js";
