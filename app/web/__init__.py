"""The HTML site: pages, forms, downloads and the small JSON endpoints its JavaScript polls."""
