/** Row types of the image schema (see migrations/001-initial.ts for the conventions). */
export interface ImageRow {
  id: string;
  name: string | null;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  status: string;
  visibility: string;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  owner: string | null;
  protected: number;
  os_hidden: number;
  created_at: number;
  updated_at: number;
  deleted: number;
  deleted_at: number | null;
}
export interface ImagePropertyRow {
  image_id: string;
  name: string;
  value: string;
}
export interface ImageTagRow {
  image_id: string;
  value: string;
}
export interface ImageLocationRow {
  id: string;
  image_id: string;
  store: string;
  url: string;
  created_at: number;
}
export interface ImageMemberRow {
  image_id: string;
  member: string;
  status: string;
  created_at: number;
  updated_at: number;
}
export interface TaskRow {
  id: string;
  image_id: string;
  type: string;
  status: string;
  owner: string | null;
  user_id: string | null;
  request_id: string | null;
  input: string;
  result: string | null;
  message: string;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface GlanceDB {
  image: ImageRow;
  image_property: ImagePropertyRow;
  image_tag: ImageTagRow;
  image_location: ImageLocationRow;
  image_member: ImageMemberRow;
  task: TaskRow;
}
