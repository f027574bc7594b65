/** Size limits on user-written specs; every one is checked by the parsers. */
export const specLimits = {
  nameBytesMax: 63,
  labelsCountMax: 256,
  labelKeyBytesMax: 256,
  labelValueBytesMax: 4_096,
  argumentsCountMax: 1_024,
  argumentBytesMax: 64 * 1_024,
  envCountMax: 4_096,
  pathBytesMax: 4_096,
  mountsCountMax: 256,
  constraintsCountMax: 64,
  preferencesCountMax: 8,
  platformsCountMax: 32,
  networksCountMax: 64,
  portsCountMax: 1_024,
  replicasMax: 1_000_000,
  durationMsMax: 365 * 24 * 60 * 60 * 1_000,
  shortTextBytesMax: 256,
  messageBytesMax: 4_096,
  pemBytesMax: 64 * 1_024,
} as const;

export const namePattern = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/u;
export const namePatternText = "a DNS label: letters, digits and '-', not starting or ending with '-'";
