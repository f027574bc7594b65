import { MemoryLogStorage } from "../../../src/raft/storage/index.js";
import { logStorageSuite } from "./log-storage-suite.js";

logStorageSuite("MemoryLogStorage", () => Promise.resolve({ storage: new MemoryLogStorage(), close: () => Promise.resolve() }));
