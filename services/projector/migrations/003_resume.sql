-- The reconciler looks for orders neither finished nor resting whose last event is old.
create index orders_unfinished_updated_idx on orders (updated_at)
    where status in ('pending', 'routing', 'building', 'submitted');
-- Refused events are no longer part of an order's history (readers fold it again): drop
-- those stored before. They stay listed in projector_rejects.
delete from order_events e using projector_rejects r
    where e.order_id = r.order_id and e.seq = r.seq and e.stream_seq = r.stream_seq;
