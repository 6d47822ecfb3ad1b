"""The order service of the async messaging lesson: takes orders, tells the others."""
