"""An outside mail provider: the email consumer's side effect lands here, outside its store."""
