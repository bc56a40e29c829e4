-- Every order belongs to the account that submitted it; readers list one account's orders.
alter table orders add column account text not null default '';

create index orders_account_created_idx on orders (account, created_at desc, order_id desc);
create index orders_account_status_created_idx on orders (account, status, created_at desc, order_id desc);
-- Listing is always per account now.
drop index orders_created_idx;
drop index orders_status_created_idx;
