/**
 * The contract between the volume manager and a storage backend, modelled on
 * upstream's cinder.volume.driver.VolumeDriver. The manager owns the database
 * and the status state machine; a driver only moves bytes and answers for its
 * backend. Every method may be retried after a crash of the manager, so each
 * must tolerate being called again for the same id (create overwrites a
 * half-made volume, delete of a missing volume succeeds).
 *
 * Sizes on this interface are GiB (as the API's `size`) unless the name says bytes.
 */

export const GiB = 1024 ** 3;

export interface VolumeRef {
  id: string;
  /** GiB. */
  size: number;
}

export interface SnapshotRef {
  id: string;
  volumeId: string;
  /** GiB: the volume's size when the snapshot was taken. */
  volumeSize: number;
}

/** create_info of Nova's os-assisted-volume-snapshots: what Nova writes, and where. */
export interface AssistedCreateInfo {
  snapshot_id: string;
  type: 'qcow2';
  /** A file name in the directory of the volume's file (Nova writes it beside the disk it copies). */
  new_file: string;
  id?: string;
}

/**
 * A snapshot of an in-use volume (upstream's remotefs _create_snapshot_online): the volume's
 * consumers, and a way to have the hypervisor that holds the volume open write the copy.
 */
export interface OnlineSnapshot {
  /** The open attachments: the instance (Nova's server) and the connector it connected with. */
  attachments: { instanceUuid: string | null; connector?: Connector }[];
  /**
   * Asks Nova to write `createInfo.new_file` from the running disk of the instance; resolves once
   * Nova reported the copy done, throws VolumeDriverError when Nova refused, reported an error or
   * did not answer in time. The file may then exist half-written: the driver removes it.
   */
  assisted(instanceUuid: string, createInfo: AssistedCreateInfo): Promise<void>;
}

/** What os-brick sends in upstream: where the consumer of a connection runs. */
export interface Connector {
  host?: string;
  ip?: string;
  initiator?: string;
  multipath?: boolean;
  [key: string]: unknown;
}

/** upstream's connection_info: what Nova's volume drivers need to reach the disk. */
export interface ConnectionInfo {
  driver_volume_type: string;
  data: Record<string, unknown>;
}

/**
 * One pool's report, as upstream's get_volume_stats: the scheduler's capacity
 * filter and weigher read these. Capacities are GiB (fractions allowed).
 */
export interface PoolStats {
  pool_name: string;
  total_capacity_gb: number;
  free_capacity_gb: number;
  /** Sum of the sizes of the volumes and snapshots the pool holds (what thin provisioning has promised). */
  provisioned_capacity_gb: number;
  allocated_capacity_gb: number;
  max_over_subscription_ratio: number;
  /** Percentage of total_capacity_gb the scheduler must leave free. */
  reserved_percentage: number;
  thin_provisioning_support: boolean;
  thick_provisioning_support: boolean;
  multiattach: boolean;
  QoS_support: boolean;
}

export interface BackendStats {
  volume_backend_name: string;
  vendor_name: string;
  driver_version: string;
  storage_protocol: string;
  pools: PoolStats[];
}

/** Upstream's VolumeDriverException family: the manager sets the volume to error with this message. */
export class VolumeDriverError extends Error {
  constructor(
    message: string,
    readonly reason: 'setup' | 'not_found' | 'invalid_image' | 'capacity' | 'invalid_reference' | 'backend' = 'backend',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VolumeDriverError';
  }
}

/** An image handed to copyImageToVolume: a local file already downloaded from Glance. */
export interface LocalImage {
  path: string;
  /** Glance's disk_format as declared; the driver verifies the content agrees. */
  diskFormat: string;
}

export interface ConnectionOptions {
  attachmentId?: string;
  accessMode?: 'rw' | 'ro';
}

export interface OpenConnection {
  volume: VolumeRef;
  connector: Connector;
  attachmentId: string;
  accessMode: 'rw' | 'ro';
}

/** upstream's existing_ref: names a backend object Cinder does not manage yet, e.g. `{"source-name": "disk.qcow2"}`. */
export type ExistingRef = Record<string, unknown>;

/** One entry of upstream's get_manageable_volumes/snapshots; size in GiB rounded up. */
export interface ManageableResource {
  reference: Record<string, string>;
  size: number;
  safeToManage: boolean;
  reasonNotSafe: string | null;
  /** The Cinder volume or snapshot that already owns it. */
  cinderId: string | null;
  extraInfo: string | null;
  /** Snapshots: the reference of the volume it was taken from, when the backend knows it. */
  sourceReference?: Record<string, string> | null;
}

export interface VolumeDriver {
  /** Backend name reported to the scheduler (volume_backend_name). */
  readonly backendName: string;
  /** Capabilities a volume type's extra specs can ask for (`thin_provisioning_support`, `multiattach` …). */
  readonly capabilities: Readonly<Record<string, boolean | string>>;

  /** Prepares the backend (directories, pools) once at start; must be safe to repeat. */
  doSetup(): Promise<void>;
  /** Throws VolumeDriverError('…', 'setup') when the backend cannot serve (missing tool, unusable pool). */
  checkForSetupError(): Promise<void>;
  /** Current capacity, read fresh from the backend (never a cached count of what the manager asked for). */
  getVolumeStats(): Promise<BackendStats>;

  /** A blank volume of volume.size GiB, reading as zeroes. */
  createVolume(volume: VolumeRef): Promise<void>;
  /** Removes the volume; a volume that does not exist is already deleted (no error). Refuses while snapshots depend on it only if the backend chains them. */
  deleteVolume(volume: VolumeRef): Promise<void>;
  /**
   * Grows the volume to newSize GiB, keeping its data; newSize > volume.size is checked by the API.
   * `connectors`: those of the attachments of an in-use volume (online extend, 3.42).
   */
  extendVolume(volume: VolumeRef, newSize: number, opts?: { connectors?: (Connector | undefined)[] }): Promise<void>;

  /**
   * A point-in-time copy of the volume's data that survives later writes and the volume's
   * deletion. `online`: the volume is in use; a backend whose data a consumer holds open (a
   * file a guest's QEMU has locked) has the consumer's hypervisor make the copy through it.
   */
  createSnapshot(snapshot: SnapshotRef, online?: OnlineSnapshot): Promise<void>;
  /** Idempotent as deleteVolume. */
  deleteSnapshot(snapshot: SnapshotRef): Promise<void>;
  /** A new volume holding the snapshot's data, grown to volume.size (>= snapshot.volumeSize). */
  createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void>;
  /** Puts the snapshot's data back into its volume (upstream's revert_to_snapshot); the volume has the snapshot's size. */
  revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void>;
  /** A new volume holding the source's current data, grown to volume.size (>= source.size). */
  createClonedVolume(volume: VolumeRef, source: VolumeRef): Promise<void>;

  /**
   * Writes a Glance image into an existing volume. The image is untrusted: a
   * format other than declared, a backing file or an external data file is
   * refused with reason 'invalid_image'; a virtual size above the volume's is
   * 'capacity'.
   */
  copyImageToVolume(volume: VolumeRef, image: LocalImage): Promise<void>;
  /** Writes the volume's data to destPath in diskFormat (raw or qcow2), for upload to Glance. */
  copyVolumeToImage(volume: VolumeRef, destPath: string, diskFormat: 'raw' | 'qcow2'): Promise<void>;

  /**
   * How a host with this connector reaches the volume; may export it (and must be
   * repeatable). An export is per attachment when the attachment's id is given.
   */
  initializeConnection(volume: VolumeRef, connector: Connector, opts?: ConnectionOptions): Promise<ConnectionInfo>;
  /** Ends what initializeConnection exported for this connector (or attachment); absent exports are not an error. */
  terminateConnection(volume: VolumeRef, connector: Connector | undefined, opts?: ConnectionOptions): Promise<void>;
  /**
   * At start: the connections still open (attachments not deleted) are served
   * again, exports left by a previous process for anything else are ended.
   */
  restoreConnections?(open: OpenConnection[]): Promise<void>;
  /** Stops serving exports this process started (service shutdown); restoreConnections brings them back. */
  close?(): Promise<void>;

  /**
   * Manage existing (upstream's ManageableVD): the size in GiB (rounded up) of the backend
   * object `ref` names, after checking it may become a volume. The object is untrusted:
   * anything the driver will not take (no such object, a name outside the backend, a
   * format it cannot serve, a backing file) is VolumeDriverError reason 'invalid_reference'.
   */
  manageExistingGetSize(volume: VolumeRef, ref: ExistingRef): Promise<number>;
  /** Makes the object the volume's data (renamed to the volume's name; grown to volume.size GiB); same refusals. */
  manageExisting(volume: VolumeRef, ref: ExistingRef): Promise<void>;
  /**
   * The backend's objects that could become volumes, each with why not when unsafe.
   * `known`: backend name (VolumeRef.id) → Cinder id of the volumes Cinder has here.
   */
  getManageableVolumes(known: ReadonlyMap<string, string>): Promise<ManageableResource[]>;
  /** Cinder forgets the volume; its data stays on the backend (findable again by getManageableVolumes). */
  unmanage(volume: VolumeRef): Promise<void>;
  /** As manageExistingGetSize, for a snapshot of snapshot.volumeId. */
  manageExistingSnapshotGetSize(snapshot: SnapshotRef, ref: ExistingRef): Promise<number>;
  manageExistingSnapshot(snapshot: SnapshotRef, ref: ExistingRef): Promise<void>;
  /** `known`: backend name → Cinder id of the snapshots Cinder has here. */
  getManageableSnapshots(known: ReadonlyMap<string, string>): Promise<ManageableResource[]>;
  unmanageSnapshot(snapshot: SnapshotRef): Promise<void>;

  /** Bytes currently used on the backend by the volume (for tests and stats); undefined when absent. */
  volumeUsage?(volume: VolumeRef): Promise<number | undefined>;
}
