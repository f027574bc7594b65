import type { Logger } from "../../common/logger.js";
import { createNetworkInTx, removeNetworkInTx } from "../allocator/index.js";
import { parseNetworkSpec, type Network } from "../objects/index.js";
import type { MemoryStore } from "../store/index.js";

/**
 * Network CRUD for the control API. Creation picks the subnet and VNI in the same store
 * write that creates the network; removal refuses a network services or live tasks still use.
 */
export class NetworkControl {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #newId: () => string;

  constructor(options: { store: MemoryStore; logger: Logger; newId: () => string }) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#newId = options.newId;
  }

  /** Parses a NetworkSpec; user networks may not claim to be the ingress network. */
  async create(input: unknown, options: { signal?: AbortSignal }): Promise<Network> {
    const spec = { ...parseNetworkSpec(input, "spec"), ingress: false };
    const network = await this.#store.update((tx) => createNetworkInTx(tx, this.#newId(), spec), options);
    this.#logger.info({ networkId: network.id, name: spec.name, subnet: network.subnet, vni: network.vni }, "network created");
    return this.get(network.id);
  }

  get(reference: string): Network {
    return this.#store.view((tx) => tx.lookup("network", reference));
  }

  list(): Network[] {
    return this.#store.view((tx) => tx.find("network")).sort((left, right) => left.meta.createdAt - right.meta.createdAt || left.id.localeCompare(right.id));
  }

  async remove(reference: string, options: { signal?: AbortSignal }): Promise<void> {
    const network = await this.#store.update((tx) => removeNetworkInTx(tx, reference), options);
    this.#logger.info({ networkId: network.id, name: network.spec.name }, "network removed");
  }
}
