"""Model families, one package each (models/<family>/), and the layers they share
(models/layers.py). Importing a family's package registers it with the training engine;
`import models.families` registers all of them."""
