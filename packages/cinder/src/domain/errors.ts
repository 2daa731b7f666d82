import { ApiError, badRequest, notFound } from '@onestack/core/errors.ts';

/** Upstream's messages, which clients print as-is. */
export const volumeNotFound = (id: string) => notFound(`Volume ${id} could not be found.`);
export const snapshotNotFound = (id: string) => notFound(`Snapshot ${id} could not be found.`);
export const typeNotFound = (id: string) => notFound(`Volume type ${id} could not be found.`);
export const attachmentNotFound = (id: string) => notFound(`Volume attachment could not be found with filter: attachment_id = ${id}.`);
export const invalidVolume = (reason: string) => badRequest(`Invalid volume: ${reason}`);
export const invalidInput = (reason: string) => badRequest(`Invalid input received: ${reason}`);
/** VolumeSizeExceedsAvailableQuota / QuotaError as upstream renders them: 413 overLimit. */
export const overQuota = (message: string) => new ApiError('over_quota', message);
