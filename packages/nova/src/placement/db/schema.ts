/** Placement's tables as Kysely sees them (times in ms, see core/db). */
export interface ResourceProviderRow {
  uuid: string;
  name: string;
  generation: number;
  parent_provider_uuid: string | null;
  root_provider_uuid: string;
  created_at: number;
  updated_at: number;
}

export interface InventoryRow {
  resource_provider_uuid: string;
  resource_class: string;
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
  created_at: number;
  updated_at: number;
}

export interface ConsumerRow {
  uuid: string;
  project_id: string;
  user_id: string;
  generation: number;
  consumer_type: string | null;
  created_at: number;
  updated_at: number;
}

export interface AllocationRow {
  consumer_uuid: string;
  resource_provider_uuid: string;
  resource_class: string;
  used: number;
  created_at: number;
  updated_at: number;
}

export interface NamedRow {
  name: string;
  created_at: number;
  updated_at: number;
}

export interface PlacementDB {
  resource_providers: ResourceProviderRow;
  inventories: InventoryRow;
  consumers: ConsumerRow;
  allocations: AllocationRow;
  resource_classes: NamedRow;
  traits: NamedRow;
  resource_provider_traits: { resource_provider_uuid: string; trait: string };
  resource_provider_aggregates: { resource_provider_uuid: string; aggregate_uuid: string };
  /** One row (id 1): moved on by every change to what allocation candidates are computed from, allocations aside. */
  placement_changes: { id: number; counter: number };
}
