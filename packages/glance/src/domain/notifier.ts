import type { Logger } from 'pino';
import type { Bus, Priority } from '@onestack/core/bus/bus.ts';
import type { RequestContext } from '@onestack/core/context.ts';
import type { Image, ImageMember } from './image.ts';
import { isoTime } from './time.ts';

export type NotificationSink = Pick<Bus, 'notify'>;

/**
 * Image notifications as upstream's glance.notifier sends them: event types
 * `image.create`, `image.update`, `image.prepare`, `image.upload`,
 * `image.activate`, `image.delete` and `image.member.*`, publisher
 * `image.<host>`, payloads in format_image_notification's shape (what
 * Ceilometer reads).
 */
export class ImageNotifier {
  constructor(
    private readonly sink: NotificationSink | undefined,
    private readonly hostname: string,
    private readonly logger: Logger,
  ) {}

  image(eventType: string, image: Image, ctx?: RequestContext, extra: Record<string, unknown> = {}): void {
    this.send(eventType, 'INFO', { ...imagePayload(image), ...extra }, ctx);
  }

  /** A failed upload: upstream sends the reason as the whole payload, at ERROR. */
  uploadFailed(message: string, ctx?: RequestContext): void {
    this.send('image.upload', 'ERROR', message, ctx);
  }

  member(eventType: string, member: ImageMember, ctx?: RequestContext, extra: Record<string, unknown> = {}): void {
    this.send(
      eventType,
      'INFO',
      {
        image_id: member.imageId,
        member_id: member.memberId,
        status: member.status,
        created_at: isoTime(member.createdAt),
        updated_at: isoTime(member.updatedAt),
        deleted: false,
        deleted_at: null,
        ...extra,
      },
      ctx,
    );
  }

  private send(eventType: string, priority: Priority, payload: unknown, ctx: RequestContext | undefined): void {
    if (!this.sink) return;
    // Notifications never fail the API call that caused them, as upstream.
    this.sink
      .notify({ eventType, publisherId: `image.${this.hostname}`, priority, payload, ctx })
      .catch((err: unknown) => this.logger.warn({ err, event_type: eventType }, 'notification failed'));
  }
}

/** upstream's format_image_notification: no locations, they may carry credentials. */
function imagePayload(image: Image): Record<string, unknown> {
  return {
    id: image.id,
    name: image.name,
    status: image.status,
    created_at: isoTime(image.createdAt),
    updated_at: isoTime(image.updatedAt),
    min_disk: image.minDisk,
    min_ram: image.minRam,
    protected: image.protected,
    checksum: image.checksum,
    owner: image.owner,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    size: image.size,
    virtual_size: image.virtualSize,
    is_public: image.visibility === 'public',
    visibility: image.visibility,
    properties: { ...image.properties },
    tags: [...image.tags],
    deleted: false,
    deleted_at: null,
  };
}
