// Tests are written in TypeScript and compiled by `npm run build`; jest runs the compiled ESM
// (node --experimental-vm-modules), so @kubernetes/client-node's ESM-only build loads as is.
const project = (name, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform: {},
  testMatch: [`<rootDir>/dist/test/${name}/**/*.test.js`],
  ...extra,
});

export default {
  projects: [
    project('unit'),
    project('integration'),
    project('e2e'),
  ],
  testTimeout: 30_000,
};
