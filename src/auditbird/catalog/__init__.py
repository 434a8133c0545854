"""Ready-made action catalogs. Importing one registers its actions; nothing is forced on you.

import auditbird.catalog.openstatus        # or: auditbird --actions auditbird.catalog.openstatus
"""
