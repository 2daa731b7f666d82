import { MemoryStore } from './memory-store.ts';
import { imageStoreContract } from './store-contract.ts';

imageStoreContract('MemoryStore', async () => {
  const store = new MemoryStore();
  return { store, contents: async () => store.locations().sort(), holdsImagesInMemory: true };
});
