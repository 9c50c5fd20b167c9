/** Tests run against the real kernel: they need root (CI runs as root) and the built addon. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json' }] },
  testTimeout: 60000,
  // Two cores: run test files two at a time; namespaces and cgroups are per test, never shared.
  maxWorkers: 2,
};
