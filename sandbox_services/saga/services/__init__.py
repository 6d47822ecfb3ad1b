"""The Saga lesson's services: orders, payments, inventory, shipping and a coordinator."""
