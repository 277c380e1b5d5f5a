/** ingressd's version, as package.json says (test/docs.test.ts keeps the two equal): what a node reports in cluster mode. */
export const VERSION = '0.1.0'
